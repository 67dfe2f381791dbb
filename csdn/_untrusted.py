"""Text and sizes that come from files: escaped before they are printed, bounded before memory is allocated.

The one home of the guards every reader uses (``csdn.clip`` included, the only root helper it may import):

* :func:`printable` / :func:`quoted`: file-derived text (a pickle global's name, a config string, an exception
  raised while parsing) with control characters shown as escapes (``\\x1b``, ``\\n``) and cut to a length, so an
  error line can neither run terminal escape sequences nor fill a screen;
* :func:`first_line` / :func:`error_line`: the printable first line of an exception (torch's C++ errors carry
  stack frames after it), with its type for a reason inside a message, alone for the CLI's error line;
* :func:`byte_limit` / :func:`over_limit`: the budgets for sizes a file declares (tensors, zip entries), read
  from environment variables at call time, and the one message that names the file, the limit and how to raise
  it;
* :func:`check_tensor_sizes`: loaded tensors that declare more bytes than the file holds (zero strides);
* :func:`regular_file`: the right reason for a path that is not a readable regular file (missing, a folder, a
  symbolic-link loop, a FIFO or device).

This module imports nothing else from csdn (and torch only inside :func:`check_tensor_sizes`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_TEXT",
    "printable",
    "quoted",
    "first_line",
    "byte_limit",
    "over_limit",
    "regular_file",
    "check_tensor_sizes",
]

MAX_TEXT = 300  # characters of file-derived text kept in one message

#: Environment variable -> default budget in bytes (see :func:`byte_limit`).
LIMITS = {
    "CSDN_MAX_TENSOR_BYTES": 8 << 30,  # materialised bytes of everything one file declares (all tensors together)
    "CSDN_MAX_RECORD_BYTES": 256 << 20,  # one non-tensor record of an archive (data.pkl, a code file)
}


def printable(text: object, limit: int = MAX_TEXT) -> str:
    """``str(text)`` safe to print: non-printable characters escaped, cut to ``limit`` characters.

    Control characters (``\\x1b``, ``\\r``, ``\\n``, ...), other non-printable code points (``\\u202e``) and lone
    surrogates are written as Python escapes; the text is cut after ``limit`` characters with a note of how many
    were left out.

    Example:
        >>> printable("evil\\x1b[2Jname\\n")
        'evil\\\\x1b[2Jname\\\\n'
    """
    text = str(text)
    cut = len(text) - limit
    head = text[:limit] if cut > 0 else text
    if not head.isprintable():
        head = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode() for c in head)
    return f"{head}... ({cut} more characters)" if cut > 0 else head


def quoted(text: object, limit: int = MAX_TEXT) -> str:
    """``repr(str(text))`` (quoted, every non-printable character escaped), cut to ``limit`` characters."""
    return printable(repr(str(text)), limit)


def first_line(error: BaseException, limit: int = MAX_TEXT) -> str:
    """``"TypeName: first line of the message"`` of an exception, printable (C++ stack frames dropped)."""
    lines = str(error).strip().splitlines()
    return printable(f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__, limit)


def error_line(error: BaseException, limit: int = 1000) -> str:
    """The line a command prints for ``error``: its message's first line (or its type), printable, capped."""
    lines = str(error).strip().splitlines()
    return printable(lines[0] if lines else type(error).__name__, limit)


def byte_limit(name: str) -> int:
    """The budget ``name`` (a key of :data:`LIMITS`): the environment variable's value in bytes, else the default.

    Raises:
        ValueError: if the variable is set to something other than a non-negative integer.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return LIMITS[name]
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name}={quoted(raw, 40)} is invalid: expected a number of bytes >= 0")
    return value


def over_limit(what: str, size: int, name: str) -> str:
    """The one message for a declared size over budget ``name`` (callers prefix the file): sizes, how to raise it."""
    return (
        f"{what} declares {size:,} bytes, more than the limit of {byte_limit(name):,} bytes; if you trust this "
        f"file, raise the limit with the environment variable {name}=BYTES"
    )


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is a regular file (or a link to one); otherwise the error that says what it is instead.

    Raises:
        FileNotFoundError: if nothing is there (or a symbolic link points at nothing).
        ValueError: for a folder, a symbolic-link loop, a FIFO, socket or device, naming it.
    """
    path = Path(path)
    name = quoted(os.fspath(path))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        dangling = path.is_symlink()
        reason = "is a symbolic link to a missing file" if dangling else "does not exist"
        raise FileNotFoundError(f"{what} {name} {reason}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(f"{what} {name} is a symbolic link loop; point it at a file") from None
        if error.errno == errno.ENOTDIR:
            raise FileNotFoundError(f"{what} {name} does not exist (a part of its path is a file)") from None
        raise ValueError(f"{what} {name} cannot be read ({first_line(error)})") from None
    if stat.S_ISREG(mode):
        return path
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))  # fmt: skip
    kind = next((kind for test, kind in kinds if test(mode)), "not a regular file")
    raise ValueError(f"{what} {name} is {kind}, not a regular file; pass the file itself")


def check_tensor_sizes(value: Any, where: object) -> None:
    """Refuse tensors a file declares larger than the bytes it holds, before anything copies them.

    A loaded tensor is a view of a storage the file held; a view with zero or overlapping strides can declare far
    more elements than that storage (``torch.load`` accepts it without allocating, the first copy would). Every
    tensor in the nested ``value`` must fit its storage, and all of them together ``CSDN_MAX_TENSOR_BYTES``.

    Raises:
        ValueError: naming ``where`` (the file), the entry, and for the budget how to raise it.
    """
    import torch

    total, limit = 0, byte_limit("CSDN_MAX_TENSOR_BYTES")
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{key}[{k!r}]", v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(item))
        elif isinstance(item, torch.Tensor) and item.layout == torch.strided:
            size = item.numel() * item.element_size()
            if size > item.untyped_storage().nbytes():
                raise ValueError(
                    f"{printable(where)}: tensor {printable(key or '<root>', 120)} of shape {tuple(item.shape)} "
                    f"declares {size:,} bytes but its storage holds {item.untyped_storage().nbytes():,} (zero or "
                    "overlapping strides); the file is damaged or crafted"
                )
            total += size
            if total > limit:
                raise ValueError(
                    f"{printable(where)}: {over_limit('its tensors together', total, 'CSDN_MAX_TENSOR_BYTES')}"
                )
