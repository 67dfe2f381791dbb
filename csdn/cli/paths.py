"""Output paths of the CLI commands, checked before any work: one clear line instead of a traceback afterwards.

Every command that writes calls :func:`check_outputs` (through :func:`csdn.cli.main`) or :func:`check_output_dir`
(``csdn train``, once its config is resolved) before it loads a model or reads a dataset. A target is refused
when it is a folder where a file is expected (unless the command has a default file name to write inside it),
a file where a folder is expected, lies under a file, lies in a folder csdn cannot write to, or sits on a disk
with less than :data:`MIN_FREE_BYTES` free. A file target's folder must exist (a typo in it is not silently
turned into new folders); folder targets (run folders, ``--plot``/``--report`` folders) are created with their
missing parents. ``--out DIR/`` (trailing slash, or an existing
folder) writes the command's default file name inside ``DIR``. A disk that fills up while writing
(``ENOSPC``) becomes one line through :func:`output_error_message`; the atomic writers of :mod:`csdn._io`
leave nothing half-written.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "MIN_FREE_BYTES",
    "OUTPUT_ERRNOS",
    "check_output_dir",
    "check_output_file",
    "check_outputs",
    "output_error_message",
]

#: Free space a target's disk must have before a command starts (the smallest output, a JSON file, fits).
MIN_FREE_BYTES = 1 << 20
#: ``OSError`` numbers that mean "this output cannot be written here" (reported in one line, exit 2).
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _existing_ancestor(path: Path, option: str) -> Path:
    """The nearest folder above ``path`` that exists; raises if a file is in the way."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file, not a folder; "
                    "choose a path in a folder"
                )
            return parent
    return Path(".")


def _check_writable(folder: Path, path: Path, option: str) -> None:
    """Raise unless a file can be created in ``folder`` and its disk has :data:`MIN_FREE_BYTES` free."""
    try:
        usage = shutil.disk_usage(folder)
        free = usage.free if usage.total > 0 else None  # pseudo file systems (/proc) report 0 of 0
    except OSError:
        free = None  # not measurable here (some network file systems); the write itself will tell
    if free is not None and free < MIN_FREE_BYTES:
        raise ValueError(
            f"{option} {str(path)!r}: the disk of {str(folder)!r} is full ({free} bytes free); free some space "
            "or choose a path on another disk"
        )
    try:  # os.access is not enough: it says yes to root on read-only mounts and no-execute folders
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".csdn-write-check-"):
            pass
    except OSError as error:
        raise ValueError(
            f"{option} {str(path)!r}: cannot write in {str(folder)!r} ({error.strerror or error}); choose a "
            "folder you can write to"
        ) from None


def check_output_file(path: str | os.PathLike, option: str, default_name: str | None = None) -> Path:
    """Check a file target before the work; returns the file to write.

    Args:
        path: The target as the user gave it.
        option: The option's name for messages, e.g. ``"--out"``.
        default_name: File name written inside ``path`` when it is a folder (an existing one, or a path ending
            in ``/``); ``None`` refuses a folder.

    Raises:
        ValueError, NotADirectoryError, FileNotFoundError: naming ``path`` and what to do instead (a file
            target's folder must exist, except with ``DIR/``, which is created).
    """
    text = os.fspath(path)
    target = Path(text)
    as_folder = text.endswith(("/", os.sep)) or target.is_dir()
    if as_folder:
        if default_name is None:
            raise ValueError(f"{option} {text!r} is a folder; pass a file name")
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"{option} {text!r} ends with '/' but is a file; drop the '/' or pick a folder")
        target = target / default_name
        if target.is_dir():
            raise ValueError(f"{option} {str(target)!r} is a folder; pass a file name")
    folder = target.parent
    if not folder.is_dir():
        folder = _existing_ancestor(target, option)  # a file in the way gets its own message
        if as_folder:  # ``--out DIR/`` names a folder to write into: it is created
            _check_writable(folder, target, option)
            return target
        raise FileNotFoundError(
            f"{option} {str(target)!r}: its folder {str(target.parent)!r} does not exist; create it first "
            f"(mkdir -p {str(target.parent)!r}) or choose a file in an existing folder"
        )
    _check_writable(folder, target, option)
    return target


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """Check a folder target (created later if missing) before the work; returns it as a :class:`Path`.

    Raises:
        ValueError, NotADirectoryError: naming ``path`` and what to do instead.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{option} {str(target)!r} is a file; pass a folder")
    _check_writable(target if target.is_dir() else _existing_ancestor(target, option), target, option)
    return target


#: command -> (option attribute, option name, what it is: "dir" or a default file name for ``DIR/``).
_OUTPUTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "eval": (("json", "--json", "eval.json"), ("plot", "--plot", "dir"), ("report", "--report", "dir")),
    "extract": (("out", "--out", "features.pt"),),
    "demo": (("dir", "--dir", "dir"),),
}


#: Options whose existing file is refused unless ``--force`` (the policy ``--report`` folders share).
_REFUSE_EXISTING = ("--json",)


def check_outputs(args: argparse.Namespace) -> None:
    """Check every output option of the parsed command ``args`` (in place: ``--out DIR/`` becomes ``DIR/<name>``).

    ``csdn export --out DIR/`` writes ``DIR/<modality>.onnx``; ``csdn train`` checks ``runtime.output_dir`` itself
    once its config is resolved (:func:`check_output_dir`).
    """
    outputs = list(_OUTPUTS.get(args.command, ()))
    if args.command == "export":
        outputs.append(("out", "--out", f"{args.modality}.onnx"))
    for attribute, option, kind in outputs:
        value = getattr(args, attribute, None)
        if value is None:
            continue
        if kind == "dir":
            check_output_dir(value, option)
            continue
        target = check_output_file(value, option, kind)
        if option in _REFUSE_EXISTING and target.exists() and not getattr(args, "force", False):
            raise ValueError(f"{option} {str(target)!r} already exists; pass --force to overwrite it, or choose "
                             "another file")  # fmt: skip
        setattr(args, attribute, str(target))


def output_error_message(error: OSError) -> str | None:
    """One line for an ``OSError`` that means an output cannot be written (full disk, read-only), else None."""
    if error.errno not in OUTPUT_ERRNOS:
        return None
    where = error.filename if isinstance(error.filename, str | bytes | os.PathLike) else None
    if where is not None:
        where = Path(os.fsdecode(where)).parent  # the temporary file's folder is the target's
    reason = "the disk is full" if error.errno != errno.EROFS else "the file system is read-only"
    place = f" in {str(where)!r}" if where is not None else ""
    return f"cannot write{place}: {reason}; nothing was left half-written; free some space or choose another path"
