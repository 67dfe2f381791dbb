"""Shared plumbing of :mod:`csdn.viz`: lazy matplotlib figures, atomic PNG writes, images for display."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from .._optional import atomic_target, require
from ..data.loaders import load_image
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
    with atomic_target(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def denormalize(images: torch.Tensor) -> np.ndarray:
    """Model inputs ``(N, 3, H, W)`` (ImageNet-normalised) -> displayable ``(N, H, W, 3)`` floats in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device)[:, None, None]
    return (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()


def display_image(image: Any, size: Sequence[int] | None = None) -> np.ndarray:
    """An image to show: path, PIL image, HxW / HxWx3 array (uint8 or float in [0, 1]) -> ``(H, W, 3)`` uint8.

    Args:
        image: The image.
        size: Resize to ``(H, W)`` (antialiased) so grid cells line up; ``None`` keeps the size.
    """
    if isinstance(image, (str, os.PathLike)):
        pil = load_image(image)
    elif isinstance(image, PIL.Image.Image):
        pil = image.convert("RGB")
    elif isinstance(image, (np.ndarray, torch.Tensor)):
        array = np.asarray(image)
        if np.issubdtype(array.dtype, np.floating):
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        pil = PIL.Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    else:
        raise ValueError(f"cannot display a {type(image).__name__}: pass a path, PIL image or HxWx3 array")
    if size is not None:
        pil = pil.resize((int(size[1]), int(size[0])), PIL.Image.Resampling.LANCZOS)
    return np.asarray(pil)
