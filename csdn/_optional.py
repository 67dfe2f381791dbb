"""Optional dependencies of the extras (``csdn.viz``, ``csdn.export``): imported on use, with a pip hint if missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


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
