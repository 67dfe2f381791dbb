"""Safe writes: the one home of how csdn creates files (``csdn.clip`` keeps its own, being a leaf).

* **Atomic.** A writer creates its output under a temporary name in the target's folder; only once it has
  finished is that renamed over the target with ``os.replace`` (atomic on POSIX and Windows within one file
  system). A crash or an exception therefore never leaves a half-written file under the final name, and an
  existing file there stays intact until the new one is complete.
* **Never through a link.** Files are created exclusively (``O_CREAT | O_EXCL``, which refuses any existing
  entry, links included) or opened with ``O_NOFOLLOW``, and ``os.replace`` replaces a link at the target rather
  than writing where it points. A link or a special file where csdn appends (``train.log``, ``metrics.jsonl``) is
  one :class:`UnsafeFileError` naming it. Folders above the target are taken as they are (a run folder, or its
  ``checkpoints/``, may be a link the user made on purpose).
* **Creations are recorded.** While a :class:`CreationLog` records a folder (a run folder claimed by
  :func:`csdn.engine.run_dir.claim_run_folder`), each file and folder these helpers create under it is noted
  with its identity (device, inode), so a failed start removes exactly what this process created and nothing
  another process wrote meanwhile (:meth:`CreationLog.remove`).

This module imports nothing else from csdn, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "CreationLog",
    "UnsafeFileError",
    "atomic_open",
    "atomic_path",
    "atomic_write_text",
    "check_write_target",
    "create_exclusive",
    "make_dirs",
    "note_created",
    "open_append",
    "recording_creations",
    "start_recording",
    "stop_recording",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows: an lstat check stands in (see _refuse_link)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO without reader must not block the open
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation on the raw descriptor


class UnsafeFileError(ValueError):
    """A path csdn writes to is a symbolic link or not a regular file (csdn never writes through either)."""


# ------------------------------------------------------------------------------------------ creation records
Identity = tuple[int, int]  # (st_dev, st_ino): what was created, not just its name


class CreationLog:
    """The files and folders this process created under ``root`` while recording, with their identities.

    Args:
        root: The folder recorded (a run folder); paths are kept as absolute strings.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.path.abspath(root)
        self.entries: dict[str, Identity] = {}  # creation order: a folder before what it holds

    def remove(self) -> tuple[int, list[str]]:
        """Delete what was recorded, newest first, if it is still what this process created.

        A path whose identity changed (another process replaced it) and a folder that is not empty (it holds
        files of another writer, e.g. a nested run's ``run.lock``) are kept.

        Returns:
            ``(number removed, paths kept)``.
        """
        removed, kept = 0, []
        for path, identity in reversed(list(self.entries.items())):
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            try:
                if (info.st_dev, info.st_ino) != identity:
                    raise FileExistsError(errno.EEXIST, "replaced by another process", path)
                os.rmdir(path) if stat.S_ISDIR(info.st_mode) else os.unlink(path)
                removed += 1
            except OSError:
                kept.append(path)
        self.entries.clear()
        return removed, kept


_LOGS: list[CreationLog] = []  # active records (nested run folders each have their own)


def start_recording(root: str | os.PathLike) -> CreationLog:
    """Start recording what these helpers create under ``root`` (the deepest recorded root owns a path)."""
    log = CreationLog(root)
    _LOGS.append(log)
    return log


def stop_recording(log: CreationLog) -> None:
    """Stop recording into ``log`` (its entries stay; a second call does nothing)."""
    if any(entry is log for entry in _LOGS):
        _LOGS.remove(log)


@contextlib.contextmanager
def recording_creations(root: str | os.PathLike) -> Iterator[CreationLog]:
    """Record, for the block, what these helpers create under ``root`` (:func:`start_recording`)."""
    log = start_recording(root)
    try:
        yield log
    finally:
        stop_recording(log)


def _identity(path: str | os.PathLike) -> Identity | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def note_created(path: str | os.PathLike, replaced: Identity | None = None) -> None:
    """Note that this process created ``path`` (or replaced what was there, whose identity was ``replaced``).

    A replacement is noted only where the replaced entry was itself this process's creation, so rewriting a file
    that existed before the recording (``last.pt`` on resume) never marks it for removal.
    """
    target = os.path.abspath(path)
    owners = [log for log in _LOGS if target.startswith(log.root + os.sep)]
    if not owners:
        return
    log = max(owners, key=lambda entry: len(entry.root))  # a nested run's files belong to the nested run
    identity = _identity(target)
    if identity is not None and (replaced is None or log.entries.get(target) == replaced):
        log.entries[target] = identity


def make_dirs(path: str | os.PathLike) -> list[Path]:
    """``mkdir -p path``, noting each folder it creates (see :func:`note_created`); returns those, outermost first."""
    path = Path(os.path.abspath(path))
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:  # made by another process meanwhile (or a file: the next mkdir says so)
            if not folder.is_dir():
                raise
            continue
        note_created(folder)
        created.append(folder)
    return created


# --------------------------------------------------------------------------------------------- safe writes
def _refuse_link(path: Path, error: OSError | None = None) -> None:
    """Raise :class:`UnsafeFileError` if ``path`` is a link (or ``error`` is the ELOOP of ``O_NOFOLLOW``)."""
    if path.is_symlink() or (error is not None and error.errno == errno.ELOOP):
        raise UnsafeFileError(
            f"{str(path)!r} is a symbolic link: csdn never writes through links (the file it points to would be "
            "overwritten); remove the link, or choose another output folder"
        ) from None


def check_write_target(path: str | os.PathLike) -> None:
    """Raise :class:`UnsafeFileError` now if ``path`` is a link or exists as anything but a regular file.

    For writers that open their file later (a log handler's first record), so the problem shows at the start.
    """
    path = Path(path)
    _refuse_link(path)
    if path.exists() and not path.is_file():
        raise UnsafeFileError(f"{str(path)!r} is not a regular file: csdn writes only regular files; remove it")


def _check_regular(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeFileError(
            f"{str(path)!r} is not a regular file (mode {stat.filemode(info.st_mode)}): csdn writes only regular "
            "files; remove it, or choose another output folder"
        )


def create_exclusive(path: str | os.PathLike, mode: int = 0o666) -> int:
    """Create ``path`` (which must not exist, not even as a link) and return its descriptor, open for writing."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY, mode)


def open_append(path: str | os.PathLike, encoding: str = "utf-8") -> IO[str]:
    """Open ``path`` for appending text, creating it (and its folder) if needed, never through a link.

    A file it creates is noted (:func:`note_created`).

    Raises:
        UnsafeFileError: if ``path`` is a symbolic link or not a regular file (a folder, a FIFO, a device).
    """
    path = Path(path)
    make_dirs(path.parent)
    _refuse_link(path)  # Windows has no O_NOFOLLOW
    created = True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY, 0o666)
    except FileExistsError:
        created = False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _CLOEXEC | _BINARY | _NONBLOCK)
        except OSError as exc:
            _refuse_link(path, exc)
            if exc.errno in (errno.EISDIR, errno.ENXIO):  # a folder; a FIFO without reader or a socket
                raise UnsafeFileError(f"{str(path)!r} is not a regular file: csdn writes only regular files") from None
            raise
        _check_regular(fd, path)
        if _NONBLOCK:
            os.set_blocking(fd, True)
    if created:
        note_created(path)
    return os.fdopen(fd, "a", encoding=encoding)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path`` for the caller to create; it replaces ``path`` on success.

    The temporary name is hidden (leading dot), unique, and keeps ``path``'s suffix, so writers that pick the
    format from the name (``Figure.savefig``, ONNX exporters) behave. The caller creates the file (or a folder)
    itself, so it gets the usual permissions (``0o666`` / ``0o777`` minus the umask). The target's folder is
    created if needed. On an exception the temporary file or folder is removed and the exception propagates.
    A link at ``path`` is replaced, never followed; what is created is noted (:func:`note_created`).

    Example::

        with atomic_path("runs/eval.json") as tmp:
            tmp.write_text(text)

    Args:
        path: Final location.

    Yields:
        The temporary path (it does not exist yet).
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        replaced = _identity(path)
        os.replace(tmp, path)
        note_created(path, replaced)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, sync: bool = False) -> Iterator[IO[bytes]]:
    """:func:`atomic_path` with the temporary file created exclusively (never through a link) and opened (binary).

    Args:
        path: Final location.
        sync: ``fsync`` the file before the rename makes it visible (checkpoints).
    """
    with atomic_path(path) as tmp, os.fdopen(create_exclusive(tmp), "wb") as handle:
        try:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        except OSError as error:
            if not isinstance(error.filename, str | bytes | os.PathLike):  # an fdopen handle's name is its fd
                error.filename = os.fspath(tmp)
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))
    return Path(path)
