"""Safe HTML building: every text goes through :func:`html.escape`; only :class:`Markup` is inserted as is.

Pages are the template ``templates/report.html`` (package data) filled by :func:`render_page`; fragments are
built with :func:`tag`, which escapes text children and attribute values, so a file or identity name such as
``<script>alert(1)</script>`` is shown as text and can never become markup. Images are embedded as ``data:``
URIs (:func:`image_data_uri`), so a page opens from disk with no server and no network.
"""

from __future__ import annotations

import base64
import html
import io
import os
import string
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import PIL.Image

__all__ = ["Markup", "escape", "tag", "join", "render_page", "image_data_uri", "thumbnail_data_uri"]


class Markup(str):
    """A string that is already safe HTML (built by :func:`tag`/:func:`join` or a literal in this package)."""


def escape(value: Any) -> Markup:
    """Escape ``value``'s text (``& < > " '``) unless it is already :class:`Markup`."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "\n") -> Markup:
    """Concatenate fragments, escaping the ones that are plain text."""
    return Markup(sep.join(escape(p) for p in parts))


def tag(name: str, *children: Any, **attrs: Any) -> Markup:
    """``<name attr="...">children</name>`` with every attribute value and text child escaped.

    Attribute names come from code, never from data (``class_`` gives ``class``; ``None``/``False`` values are
    left out, ``True`` gives a bare attribute).
    """
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        parts.append(key if value is True else f'{key}="{escape(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if name in ("img", "br", "meta"):
        return Markup(opening)
    return Markup(f"{opening}{join(children, '')}</{name}>")


def render_page(title: str, labels: Markup | str, body: Markup | str, template: str = "report.html") -> str:
    """Fill the packaged page template (inline CSS, no external resource) with escaped title and fragments."""
    text = resources.files("csdn.report").joinpath("templates").joinpath(template).read_text(encoding="utf-8")
    return string.Template(text).substitute(title=escape(title), labels=escape(labels), body=escape(body))


def image_data_uri(path: str | os.PathLike) -> str:
    """A PNG/JPEG file as a ``data:`` URI (embedded in the page)."""
    path = Path(path)
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def thumbnail_data_uri(path: str | os.PathLike, height: int = 96) -> str | None:
    """A small JPEG ``data:`` URI of the image at ``path`` (``None`` if it cannot be read)."""
    try:
        with PIL.Image.open(path) as image:
            image = image.convert("RGB")
            width = max(1, round(image.width * height / image.height))
            image = image.resize((width, height), PIL.Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def table(header: Iterable[Any], rows: Iterable[Iterable[Any]], class_: str | None = None) -> Markup:
    """An HTML table; the first column is left-aligned (a name), the others numbers."""
    head = tag("tr", *(tag("th", h, class_="name" if i == 0 else None) for i, h in enumerate(header)))
    body = [tag("tr", *(tag("td", c, class_="name" if i == 0 else None) for i, c in enumerate(row))) for row in rows]
    return tag("table", tag("thead", head), tag("tbody", *body), class_=class_)


def definition_list(items: Mapping[str, Any]) -> Markup:
    """``<dl>`` of label -> value pairs (provenance)."""
    return tag("dl", *(join([tag("dt", k), tag("dd", "-" if v is None else v)], "") for k, v in items.items()),
               class_="prov")  # fmt: skip
