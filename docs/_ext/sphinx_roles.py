"""Griffe extension for the docs build: Sphinx roles in docstrings become Markdown.

csdn's Google-style docstrings name other objects with Sphinx roles (``:func:`csdn.evaluation.evaluate```,
``:class:`~csdn.data.Sample```); mkdocstrings renders Markdown, where those would show up literally. A fully
qualified ``csdn.`` target becomes a cross-reference (``[`evaluate`][csdn.evaluation.evaluate]``), checked by
``mkdocs build --strict`` like any link; any other target (relative names, private helpers, other libraries)
becomes code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _replace(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    if target.startswith("csdn.") and "._" not in target:  # private helpers are not rendered
        return f"[`{shown}`][{target}]"
    return f"`{shown}`"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_replace, obj.docstring.value)
