"""Resizing of CLIP positional embeddings to a new (possibly non-square) token grid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_hw(size: int | tuple[int, int] | list[int], name: str = "size") -> tuple[int, int]:
    """Normalise ``size`` to a ``(height, width)`` pair of positive ints.

    Args:
        size: An int (square) or a pair ``(height, width)``.
        name: Argument name used in the error message.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: If ``size`` is not a positive int or a pair of positive ints.
    """
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def square_grid(num_tokens: int) -> tuple[int, int]:
    """Return the square grid ``(g, g)`` with ``g * g == num_tokens``.

    Raises:
        ValueError: If ``num_tokens`` is not a perfect square.
    """
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"cannot infer a square grid from {num_tokens} spatial positional-embedding rows")
    return side, side


def resize_pos_embed(
    pos: torch.Tensor,
    new_grid: int | tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Bilinearly resize a positional embedding with leading class token(s) to a new grid.

    The prefix rows (the class token) are kept as they are; the spatial rows, laid out row-major on
    ``old_grid``, are resampled with ``F.interpolate(mode="bilinear", align_corners=False)`` without
    antialiasing, as CLIP-ReID and the official CSDN code do.

    Args:
        pos: Positional embedding, shape ``(num_prefix_tokens + h0 * w0, C)``.
        new_grid: Target grid ``(h, w)`` (or an int for a square grid).
        old_grid: Source grid ``(h0, w0)``; inferred as square when None.
        num_prefix_tokens: Number of leading non-spatial rows.

    Returns:
        Tensor of shape ``(num_prefix_tokens + h * w, C)`` with ``pos``'s dtype and device.

    Raises:
        ValueError: If ``pos`` is not 2-D or its row count does not match ``old_grid``.
    """
    if pos.ndim != 2:
        raise ValueError(f"pos must have shape (prefix + h*w, C), got shape {tuple(pos.shape)}")
    h, w = to_hw(new_grid, "new_grid")
    prefix, spatial = pos[:num_prefix_tokens], pos[num_prefix_tokens:]
    h0, w0 = square_grid(spatial.shape[0]) if old_grid is None else to_hw(old_grid, "old_grid")
    if h0 * w0 != spatial.shape[0]:
        raise ValueError(f"old_grid {(h0, w0)} needs {h0 * w0} spatial rows, pos has {spatial.shape[0]}")
    if (h0, w0) == (h, w):
        return pos.clone()
    grid = spatial.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)  # (1, C, h0, w0)
    grid = F.interpolate(grid.float(), size=(h, w), mode="bilinear", align_corners=False)
    spatial = grid.permute(0, 2, 3, 1).reshape(h * w, -1).to(pos.dtype)  # (h*w, C)
    return torch.cat([prefix, spatial], dim=0)
