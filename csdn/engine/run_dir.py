"""A run folder belongs to one run at a time, a failed start leaves nothing behind, and resume tidies it first.

* :func:`claim_run_folder` holds an exclusive lock on ``output_dir`` for the life of a run: an OS lock
  (``fcntl.flock``) on ``output_dir/run.lock``, which also holds a JSON record of the holder (pid, host, start
  time, command) so a second run can say who has the folder. The OS drops the lock when its process dies, so
  the lock of a killed run is taken over (with a log line naming it). Without ``fcntl`` (Windows) the record
  file alone is the lock: a record of a process that is gone is taken over where that can be told (POSIX
  without ``fcntl``), any other is refused with a message naming the file to delete.
  Claims nest within a process (the CLI claims the folder, then :meth:`Trainer.fit` claims it again); under
  ``torchrun`` only rank 0 locks, and every rank learns the outcome, so none waits on a refused rank 0.
* A run that fails before its first epoch ends (before :meth:`RunClaim.mark_started`) removes what it created,
  and only that: each file and folder csdn's writers (:mod:`csdn._io`) create under the run folder is recorded at
  creation with its identity (device, inode), and only those are deleted, folders only when empty. Files another
  process wrote meanwhile, a nested run's folder (it holds that run's ``run.lock``) and anything replaced since
  are kept; the run folder itself (and the parents the claim created) go only when empty.
* The lock file is never followed through a link: ``run.lock`` is opened with ``O_NOFOLLOW`` and must be a
  regular file with one link (a symbolic link, a hard link to another file, a folder or a FIFO there is one
  :class:`csdn._io.UnsafeFileError` naming it), and the release removes it only if it is still the file locked.
* :func:`tidy_for_resume` removes temporary files a killed write left (``.<name>.<pid>.<hex>.tmp<suffix>``, see
  :func:`csdn._io.atomic_path`) and the ``metrics.jsonl`` records written after the checkpoint resumed from.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .._io import CreationLog, UnsafeFileError, atomic_write_text, make_dirs, start_recording, stop_recording

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks in the standard library
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolderBusyError", "RunClaim", "UnsafeFileError", "claim_run_folder", "tidy_for_resume"]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"  # lock file in the run folder; removed when the run ends
_RECORD_BYTES = 64 * 1024  # a lock record is one short JSON line; more is not read
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLAIMS: dict[str, RunClaim] = {}  # folders this process holds (absolute path -> claim), for nested claims
_TEMP_FILE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[^.]+)?$")  # csdn._io.atomic_path's temporary names


class RunFolderBusyError(ValueError):
    """Another live run holds the run folder."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``True`` when it cannot be told, i.e. off POSIX)."""
    if os.name != "posix":
        return True  # os.kill would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(record: dict[str, Any] | None) -> str:
    if not record:
        return "another process (its record is not written yet)"
    return f"pid {record.get('pid')} on host {record.get('host')}, started {record.get('started')}"


class RunClaim:
    """This process's claim on a run folder (see the module docstring); made by :func:`claim_run_folder`."""

    def __init__(self, folder: Path, active: bool) -> None:
        self.folder = folder
        self.lock_path = folder / LOCK_NAME
        self.active = active  # False on ranks other than 0: nothing locked, nothing recorded, nothing cleaned
        self.started = False
        self.made_dirs: list[Path] = []  # the run folder and the parents this claim created, outermost first
        self.created: CreationLog | None = None  # what csdn's writers created in the folder while it was held
        self._fd: int | None = None

    @property
    def created_folder(self) -> bool:
        """Whether this claim created the run folder."""
        return bool(self.made_dirs)

    def mark_started(self) -> None:
        """Record that the run finished an epoch: from now on a failure keeps the folder's content."""
        self.started = True

    # -------------------------------------------------------------------------------------------------- lock
    def acquire(self) -> None:
        """Create the folder if needed, take the lock and start recording what the run creates in the folder.

        Raises:
            RunFolderBusyError: if another live run holds the folder (the message names it).
            UnsafeFileError: if ``run.lock`` is a link, has several hard links or is not a regular file.
        """
        self.made_dirs = make_dirs(self.folder)
        record = {
            "pid": os.getpid(),
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "argv": list(sys.argv),
        }
        previous = self._lock_os() if fcntl is not None else self._lock_record_only()
        if previous:
            logger.warning(
                "%s: taking over the lock of a run that ended without releasing it (%s)",
                self.folder,
                _describe(previous),
            )
        fd = self._fd
        if fd is None:  # both lock paths open the record file or raise
            raise RuntimeError(f"{self.folder}: the lock record file is not open")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        self.created = start_recording(self.folder)

    def _open_lock(self, flags: int) -> int:
        """Open ``run.lock`` with ``flags``, never through a link; it must be a regular file with one link."""
        if self.lock_path.is_symlink():  # O_NOFOLLOW below says the same where it exists
            raise self._unsafe("is a symbolic link")
        try:
            fd = os.open(self.lock_path, flags | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or self.lock_path.is_symlink():
                raise self._unsafe("is a symbolic link") from None
            if exc.errno in (errno.EISDIR, errno.ENXIO):  # a folder; a socket
                raise self._unsafe("is not a regular file") from None
            raise
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = f"is not a regular file (mode {stat.filemode(info.st_mode)})"
        elif info.st_nlink > 1:
            problem = f"has {info.st_nlink} hard links (its content is another file's too)"
        if problem is not None:
            os.close(fd)
            raise self._unsafe(problem)
        return fd

    def _unsafe(self, problem: str) -> UnsafeFileError:
        return UnsafeFileError(
            f"lock file {str(self.lock_path)!r} {problem}: csdn writes its lock only into a plain file it can own, "
            f"never through a link (that could overwrite another file); remove it if no run uses {str(self.folder)!r}"
        )

    def _lock_os(self) -> dict[str, Any] | None:
        """flock the lock file; returns the record a previous, gone holder left in it (if any)."""
        for _ in range(10):  # retried only if a releasing holder removed the file between our open and flock
            fd = self._open_lock(os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_record(fd)
                os.close(fd)
                raise RunFolderBusyError(
                    f"run folder {str(self.folder)!r} is in use by {_describe(holder)}; wait for that run to end "
                    "or choose another runtime.output_dir"
                ) from None
            if _is_file_at(fd, self.lock_path):
                self._fd = fd
                return _read_record(fd)
            os.close(fd)
        raise RunFolderBusyError(f"could not lock {str(self.lock_path)!r}: it keeps being replaced")

    def _lock_record_only(self) -> dict[str, Any] | None:
        """Without OS locks: create the record file exclusively, taking over one of a dead process on this host."""
        logger.warning("no OS file locks on this platform: %s is locked by its record file only", self.folder)
        try:
            self._fd = self._open_lock(os.O_RDWR | os.O_CREAT | os.O_EXCL)
            return None
        except FileExistsError:
            fd = self._open_lock(os.O_RDWR)
        holder = _read_record(fd)
        gone = holder and holder.get("host") == platform.node() and not _pid_alive(_as_pid(holder.get("pid")))
        if not gone:
            os.close(fd)
            raise RunFolderBusyError(
                f"run folder {str(self.folder)!r} is in use by {_describe(holder)}; if that run is gone, delete "
                f"{str(self.lock_path)!r}"
            )
        self._fd = fd
        return holder

    def release(self) -> None:
        """Stop recording, remove the lock file (if it is still the one locked) and drop the lock.

        The file is removed before the lock is dropped, so a waiting opener sees a fresh file.
        """
        if self.created is not None:
            stop_recording(self.created)
        if self._fd is None:
            return
        locked = os.fstat(self._fd)
        if fcntl is None:  # Windows cannot remove an open file; the record file is the lock there
            os.close(self._fd)
        if _identity(self.lock_path) == (locked.st_dev, locked.st_ino):  # never another process's file
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
        if fcntl is not None:
            os.close(self._fd)  # closing drops the flock
        self._fd = None

    # ------------------------------------------------------------------------------------------- clean-up
    def remove_created(self) -> None:
        """Delete what csdn's writers created in the folder while it was held (see the module docstring)."""
        if self.created is None:
            return
        removed, kept = self.created.remove()
        if removed:
            logger.info(
                "the run failed before its first epoch: removed the %d entries it created in %s", removed, self.folder
            )
        if kept:
            logger.info(
                "kept %d of the entries the failed run created in %s, as they now are or hold another process's "
                "files: %s",
                len(kept), self.folder, ", ".join(kept[:5]),
            )  # fmt: skip

    def remove_made_dirs(self) -> None:
        """Remove the run folder and the parents this claim created, each only if empty (after :meth:`release`)."""
        for folder in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.made_dirs = []


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the entry at ``path`` (not removed or replaced since it was opened)."""
    info = os.fstat(fd)
    return _identity(path) == (info.st_dev, info.st_ino)


def _read_record(fd: int) -> dict[str, Any] | None:
    """The holder's JSON record from the open lock file (``None`` if empty, unreadable or not a record)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, _RECORD_BYTES).decode("utf-8").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _as_pid(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _agree(error: str | None) -> str | None:
    """Rank 0's outcome of claiming the folder, on every rank (no-op without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return error
    message = [error]
    dist.broadcast_object_list(message, src=0)
    return message[0]


@contextlib.contextmanager
def claim_run_folder(folder: str | os.PathLike, *, is_main: bool = True) -> Iterator[RunClaim]:
    """Hold ``folder`` exclusively for the block; if the block fails before the run started, undo its creations.

    Args:
        folder: the run folder (``runtime.output_dir``); created if missing.
        is_main: this process is rank 0 (the only one that locks and cleans; every rank must enter the block).

    Yields:
        The :class:`RunClaim` (call :meth:`RunClaim.mark_started` once the first epoch is done). A nested claim
        of the same folder in the same process yields the outer one.

    Raises:
        RunFolderBusyError: if another live run holds the folder (on every rank under ``torchrun``).
        UnsafeFileError: if ``run.lock`` is a link or not a plain file (on rank 0; the others raise
            :class:`RunFolderBusyError` with the same message).
    """
    key = os.path.abspath(folder)
    held = _CLAIMS.get(key)
    outer = held is None
    error: str | None = None
    kind: type[ValueError] = RunFolderBusyError
    claim = held if held is not None else RunClaim(Path(folder), active=is_main)
    if outer:
        if is_main:
            try:
                claim.acquire()
            except (ValueError, OSError) as exc:  # RunFolderBusyError, UnsafeFileError, a folder it cannot write
                error = str(exc) if isinstance(exc, ValueError) else f"cannot lock run folder {key!r}: {exc}"
                kind = type(exc) if isinstance(exc, UnsafeFileError) else RunFolderBusyError
    error = _agree(error)
    if error is not None:
        claim.release()
        claim.remove_made_dirs()
        raise kind(error)
    if not outer:
        yield claim
        return
    _CLAIMS[key] = claim
    try:
        yield claim
    except BaseException:
        if claim.active and not claim.started:
            claim.remove_created()
        raise
    finally:
        del _CLAIMS[key]
        claim.release()
        if claim.active and not claim.started:
            claim.remove_made_dirs()  # only if empty, i.e. the run failed (or another run took the folder since)


# ------------------------------------------------------------------------------------------------------ resume


def tidy_for_resume(folder: str | os.PathLike, stage: int, epoch: int) -> None:
    """Prepare ``folder`` for resuming from a checkpoint of ``stage`` after ``epoch`` epochs (rank 0 only).

    Removes temporary files of killed writes (:func:`csdn._io.atomic_path` names; only those of processes that
    are gone, and only where the run writes: ``folder`` and ``folder/checkpoints``, never in a nested run's
    folder) and rewrites ``metrics.jsonl`` without the records the resumed run will write again: epoch and
    evaluation records (``stage{k}/...`` events, ``step`` = 0-based epoch) of later stages or of epochs
    ``>= epoch`` of ``stage``, and unreadable lines (a write cut short).
    """
    folder = Path(folder)
    for path in sorted([*folder.glob(".*.tmp*"), *(folder / "checkpoints").glob(".*.tmp*")]):
        match = _TEMP_FILE.match(path.name)
        if match is None or _pid_alive(int(match.group(1))) and int(match.group(1)) != os.getpid():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted write", path)
    _truncate_metrics(folder / "metrics.jsonl", stage, epoch)


def _truncate_metrics(path: Path, stage: int, epoch: int) -> None:
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _before_checkpoint(line, stage, epoch)]
    if len(kept) == len(lines):
        return
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    atomic_write_text(path, "".join(kept))
    logger.info(
        "dropped %d record(s) of %s written after the checkpoint (stage %d, %d epochs done)",
        len(lines) - len(kept), path, stage, epoch,
    )  # fmt: skip


def _before_checkpoint(line: str, stage: int, epoch: int) -> bool:
    """Whether a ``metrics.jsonl`` line records something the checkpoint already includes."""
    try:
        record = json.loads(line)
    except ValueError:
        return False  # cut short by a kill
    if not isinstance(record, dict):
        return False
    match = re.match(r"stage(\d+)/", str(record.get("event", "")))
    if match is None:
        return True  # not a per-stage record
    event_stage, step = int(match.group(1)), record.get("step")
    if event_stage != stage:
        return event_stage < stage
    return not isinstance(step, int) or step < epoch
