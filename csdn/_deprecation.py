"""Deprecated public names: one warning format and the module ``__getattr__`` that serves old names.

Policy (docs/development.md, "Deprecation policy"): a renamed or moved public name keeps a working alias for
one minor version; using the alias emits a :class:`FutureWarning` (shown by default, unlike DeprecationWarning,
so scripts notice) naming the new name and the version that removes the alias.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["warn_deprecated", "deprecated_getattr"]


def warn_deprecated(
    old: str, new: str, *, since: str = "0.2.0", removed_in: str = "0.3.0", stacklevel: int = 3
) -> None:
    """Emit the FutureWarning for using ``old`` (a dotted name) instead of ``new``."""
    warnings.warn(
        f"{old} is deprecated since csdn {since} and will be removed in {removed_in}; use {new} instead",
        FutureWarning,
        stacklevel=stacklevel,
    )


def deprecated_getattr(module: str, aliases: Mapping[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) serving ``aliases``: ``old name -> (new dotted name, getter)``.

    Only a lookup of an old name warns (importing the module does not); any other unknown name is the usual
    AttributeError.
    """

    def __getattr__(name: str) -> Any:
        if name in aliases:
            new, get = aliases[name]
            warn_deprecated(f"{module}.{name}", new)
            return get()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
