"""Shared plumbing of :mod:`csdn.viz`: lazy matplotlib figures, atomic PNG writes, images for display."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from .._io import atomic_path
from .._optional import require
from ..data.images import to_pil_image
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["new_figure", "save_figure", "display_image", "denormalize"]


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches, built without pyplot (no global state/backend).

    Raises:
        ImportError: if matplotlib is missing, naming the ``viz`` extra.
    """
    figure_module = require("matplotlib.figure", "viz")
    return figure_module.Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``figure`` to ``path`` atomically (format from the suffix, e.g. ``.png``); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def denormalize(images: torch.Tensor) -> np.ndarray:
    """Model inputs ``(N, 3, H, W)`` (ImageNet-normalised) -> displayable ``(N, H, W, 3)`` floats in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device)[:, None, None]
    return (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()


def display_image(image: Any, size: Sequence[int] | None = None) -> np.ndarray:
    """An image to show (anything :func:`csdn.data.images.to_pil_image` reads) -> ``(H, W, 3)`` uint8 array.

    Args:
        image: Path, PIL image, HxW / HxWxC array (uint8 or float in [0, 1]) or uint8 (C, H, W) tensor.
        size: Resize to ``(H, W)`` (antialiased) so grid cells line up; ``None`` keeps the size.
    """
    pil = to_pil_image(image)
    if size is not None:
        pil = pil.resize((int(size[1]), int(size[0])), PIL.Image.Resampling.LANCZOS)
    return np.asarray(pil)
