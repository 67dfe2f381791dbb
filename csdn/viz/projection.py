"""2-D projection of visible and infrared embeddings, to see the modality gap and identity clusters."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._optional import require
from ._common import new_figure, save_figure

__all__ = ["pca_2d", "project_2d", "plot_modality_projection"]


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project rows ``(N, D)`` onto their first two principal components -> ``(N, 2)`` (exact, via SVD).

    The sign of each component is fixed (largest-magnitude loading positive) so plots are reproducible.
    """
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    projected = centred @ components.T
    return projected if projected.shape[1] == 2 else np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(N, D) -> (N, 2)`` by ``"pca"`` (numpy, always available) or ``"tsne"`` (needs scikit-learn).

    Raises:
        ValueError: for another method.
        ImportError: for ``"tsne"`` without scikit-learn.
    """
    if method == "pca":
        return pca_2d(features)
    if method == "tsne":
        if importlib.util.find_spec("sklearn") is None:
            raise ImportError("method='tsne' needs scikit-learn (pip install scikit-learn); method='pca' does not")
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    raise ValueError(f"Unknown value {method!r} for argument method. Valid values are ['pca', 'tsne']")


def _as_numpy(features: Any, name: str) -> np.ndarray:
    array = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {array.shape}")
    return array.astype(np.float64)


def plot_modality_projection(
    visible_feats: np.ndarray | torch.Tensor,
    infrared_feats: np.ndarray | torch.Tensor,
    out: str | os.PathLike,
    *,
    visible_pids: Sequence[int] | np.ndarray | None = None,
    infrared_pids: Sequence[int] | np.ndarray | None = None,
    method: str = "pca",
    max_ids: int = 20,
    title: str | None = None,
) -> Path:
    """Scatter visible (circles) and infrared (triangles) embeddings in one shared 2-D projection.

    Without identities the two modalities get two colours; with identities, points are coloured by identity
    (the first ``max_ids`` identities in sorted order; others drawn faint grey), so a model that closes the
    modality gap shows circles and triangles of one colour together.

    Args:
        visible_feats: ``(Nv, D)`` visible embeddings.
        infrared_feats: ``(Ni, D)`` infrared embeddings of the same model.
        out: PNG path (written atomically).
        visible_pids: ``(Nv,)`` identities (optional, with ``infrared_pids``).
        infrared_pids: ``(Ni,)`` identities.
        method: ``"pca"`` (default, no extra dependency) or ``"tsne"`` (scikit-learn).
        max_ids: Identities that get their own colour.
        title: Axes title (default names the method).

    Returns:
        ``out`` as a Path.
    """
    vis, ir = _as_numpy(visible_feats, "visible_feats"), _as_numpy(infrared_feats, "infrared_feats")
    if vis.shape[1] != ir.shape[1]:
        raise ValueError(f"visible_feats and infrared_feats differ in dimension: {vis.shape[1]} vs {ir.shape[1]}")
    if (visible_pids is None) != (infrared_pids is None):
        raise ValueError("pass both visible_pids and infrared_pids (or neither)")
    points = project_2d(np.concatenate([vis, ir]), method)
    figure = new_figure(6.0, 5.0)
    axis = figure.subplots()
    parts = (("visible", points[: len(vis)], "o"), ("infrared", points[len(vis) :], "^"))
    if visible_pids is None:
        for (name, xy, marker), color in zip(parts, ("#ff7f0e", "#1f77b4"), strict=True):
            axis.scatter(xy[:, 0], xy[:, 1], s=18, marker=marker, c=color, alpha=0.75, label=name)
        axis.legend(loc="best", fontsize=8)
    else:
        pids = (np.asarray(visible_pids), np.asarray(infrared_pids))
        shown = np.unique(np.concatenate(pids))[:max_ids]
        palette = _palette(len(shown))
        for (_, xy, marker), pid in zip(parts, pids, strict=True):
            index = np.searchsorted(shown, pid)
            known = (index < len(shown)) & (shown[np.minimum(index, len(shown) - 1)] == pid)
            axis.scatter(xy[~known, 0], xy[~known, 1], s=10, marker=marker, c="#cccccc", alpha=0.5)
            axis.scatter(xy[known, 0], xy[known, 1], s=22, marker=marker, c=palette[index[known]], alpha=0.85,
                         edgecolors="k", linewidths=0.3)  # fmt: skip
        lines = require("matplotlib.lines", "viz")
        handles = [lines.Line2D([], [], marker=m, color="k", linestyle="", label=name) for name, _, m in parts]
        axis.legend(handles=handles, loc="best", fontsize=8, title=f"{len(shown)} ids coloured", title_fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title or f"visible (o) vs infrared (^) embeddings, {method.upper()}")
    return save_figure(figure, out)


def _palette(n: int) -> np.ndarray:
    """``n`` distinct RGBA colours (tab20, cycled)."""
    return require("matplotlib", "viz").colormaps["tab20"](np.arange(n) % 20)
