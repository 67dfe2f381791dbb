"""Ranked-list grids: each row a query followed by its top-k gallery matches, framed green (same identity) or red."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._common import display_image, new_figure, save_figure

__all__ = ["plot_ranked_lists", "MATCH_COLOR", "MISMATCH_COLOR"]

MATCH_COLOR = "#2ca02c"  # green frame: same identity as the query
MISMATCH_COLOR = "#d62728"  # red frame: another identity
QUERY_COLOR = "#1f77b4"  # blue frame: the query itself
UNKNOWN_COLOR = "#7f7f7f"  # grey frame: no identities given


def _frame(axis: Any, color: str, width: float = 4.0) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def plot_ranked_lists(
    query_images: Sequence[Any],
    gallery_images: Sequence[Any],
    indices: torch.Tensor | np.ndarray,
    out: str | os.PathLike,
    *,
    query_pids: Sequence[int] | np.ndarray | None = None,
    gallery_pids: Sequence[int] | np.ndarray | None = None,
    distances: torch.Tensor | np.ndarray | None = None,
    topk: int = 10,
    max_queries: int = 8,
    cell_size: tuple[int, int] = (128, 64),
    title: str | None = None,
) -> Path:
    """Write a grid of ranked lists: one row per query, the query (blue) then its top-k gallery images.

    With identities given, each match is framed green when its pid equals the query's and red otherwise, and
    its rank and distance are written above it. The images are shown as ranked (no protocol-specific removal,
    e.g. SYSU's cam-3/cam-2 rule, is applied here).

    Args:
        query_images: Query images (paths, PIL images or HxWx3 arrays), row ``i`` of ``indices`` ranks query ``i``.
        gallery_images: Gallery images indexed by ``indices``.
        indices: Ranked gallery indices ``(Q, >= k)``, best first (e.g. ``csdn.search(...).indices``).
        out: PNG path (written atomically).
        query_pids: Query identities ``(Q,)`` (needed for green/red frames).
        gallery_pids: Gallery identities ``(G,)``.
        distances: Distances ``(Q, >= k)`` aligned with ``indices``, printed under each match.
        topk: Matches shown per query.
        max_queries: Rows shown (the first queries).
        cell_size: Displayed ``(H, W)`` of each image in pixels.
        title: Figure title.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: for inconsistent shapes or only one of ``query_pids`` / ``gallery_pids``.
        ImportError: without matplotlib (extra ``viz``).
    """
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[0] != len(query_images):
        raise ValueError(
            f"indices must be (Q, k) with Q = len(query_images) = {len(query_images)}, got {indices.shape}"
        )
    if (query_pids is None) != (gallery_pids is None):
        raise ValueError("pass both query_pids and gallery_pids (or neither) to colour matches")
    if indices.size and (indices.min() < 0 or indices.max() >= len(gallery_images)):
        raise ValueError(f"indices must index gallery_images (0..{len(gallery_images) - 1}), got {indices.max()}")
    rows, cols = min(max_queries, indices.shape[0]), min(topk, indices.shape[1])
    if rows == 0 or cols == 0:
        raise ValueError("nothing to plot: need at least one query and one ranked gallery item")
    cell_w = cell_size[1] / 64  # inches per cell, ~64 px wide at 100 dpi
    cell_h = cell_w * cell_size[0] / cell_size[1] + 0.35  # + room for the title above each image
    figure = new_figure(cell_w * (cols + 1) + 0.2, cell_h * rows + (0.4 if title else 0.1))
    grid = figure.subplots(rows, cols + 1, squeeze=False)
    for r in range(rows):
        axis = grid[r][0]
        axis.imshow(display_image(query_images[r], cell_size))
        _frame(axis, QUERY_COLOR)
        axis.set_title("query" + (f"\nid {query_pids[r]}" if query_pids is not None else ""), fontsize=8)
        for c in range(cols):
            g = int(indices[r, c])
            axis = grid[r][c + 1]
            axis.imshow(display_image(gallery_images[g], cell_size))
            if query_pids is None:
                color = UNKNOWN_COLOR
            else:
                color = MATCH_COLOR if gallery_pids is not None and gallery_pids[g] == query_pids[r] else MISMATCH_COLOR
            _frame(axis, color)
            label = f"#{c + 1}" + (f" {float(distances[r][c]):.3f}" if distances is not None else "")
            axis.set_title(label, fontsize=7, color=color)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, out)
