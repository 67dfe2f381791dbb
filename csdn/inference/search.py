"""Gallery search: rank gallery embeddings for each query, optionally with k-reciprocal re-ranking.

A thin, user-facing layer over :func:`csdn.evaluation.distance` (which computes the query x gallery distance,
re-ranked or not, on any device): this module only turns distances into top-k lists.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..evaluation import distance

__all__ = ["SearchResult", "rank_distances", "search"]


class SearchResult(NamedTuple):
    """Top-k gallery matches per query, best first.

    Attributes:
        indices: Gallery row indices ``(Q, k)``, int64, CPU.
        distances: Their distances ``(Q, k)``, float32, CPU (smaller = closer; the metric's units, or the
            re-ranked distance when ``rerank=True``).
    """

    indices: torch.Tensor
    distances: torch.Tensor


def _as_matrix(features: Any, name: str) -> torch.Tensor | np.ndarray:
    """Accept ``(N, D)`` or a single ``(D,)`` embedding (numpy or torch); reject anything else by name."""
    if not isinstance(features, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a torch tensor or numpy array (N, D), got {type(features).__name__}")
    if features.ndim == 1:
        features = features[None]
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got {tuple(features.shape)}")
    return features


def search(
    query_feats: torch.Tensor | np.ndarray,
    gallery_feats: torch.Tensor | np.ndarray,
    topk: int | None = 10,
    rerank: bool = False,
    *,
    metric: str = "cosine",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    device: str | torch.device | None = None,
    **distance_kwargs: Any,
) -> SearchResult:
    """Rank the gallery for every query.

    Args:
        query_feats: Query embeddings ``(Q, D)`` (or one ``(D,)``), e.g. from :class:`csdn.FeatureExtractor`.
        gallery_feats: Gallery embeddings ``(G, D)``.
        topk: Matches returned per query (clipped to ``G``); ``None`` returns the full ranking.
        rerank: Apply k-reciprocal re-ranking (Zhong et al. 2017) before ranking.
        metric: ``"cosine"`` (``1 - cos``; for CSDN's constant-norm embeddings the same order as the official
            inner-product score) or ``"euclidean"``.
        k1: Re-ranking neighbourhood size.
        k2: Re-ranking query-expansion size.
        lambda_value: Weight of the original distance in the re-ranked distance.
        device: Where the distance is computed (default: where the features are).
        **distance_kwargs: Passed on to :func:`csdn.evaluation.distance` (e.g. precision options).

    Returns:
        :class:`SearchResult` with ``(Q, k)`` indices and distances, best first; equal distances are ordered by
        gallery index, as in the evaluator.

    Raises:
        ValueError: for features that are not ``(N, D)``, different ``D``, or ``topk < 1``.
    """
    query_feats = _as_matrix(query_feats, "query_feats")
    gallery_feats = _as_matrix(gallery_feats, "gallery_feats")
    if query_feats.shape[1] != gallery_feats.shape[1]:
        raise ValueError(
            f"query_feats and gallery_feats must have the same dimension, got {query_feats.shape[1]} and "
            f"{gallery_feats.shape[1]} (were both extracted with the same model and flip setting?)"
        )
    if topk is not None and (not isinstance(topk, int) or topk < 1):
        raise ValueError(f"topk must be a positive int or None, got {topk!r}")
    dist = distance(
        query_feats, gallery_feats, metric=metric, rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value,
        device=device, **distance_kwargs,
    )  # fmt: skip
    return rank_distances(dist, topk)


def rank_distances(dist: torch.Tensor | np.ndarray, topk: int | None = 10) -> SearchResult:
    """Top-k of each row of a query x gallery distance matrix ``(Q, G)``, ties ordered by gallery index.

    Args:
        dist: Distances (smaller = closer), numpy or torch on any device.
        topk: Matches per query (clipped to ``G``); ``None`` keeps all.

    Returns:
        :class:`SearchResult` on CPU.
    """
    dist = torch.as_tensor(dist)
    if dist.dim() != 2:
        raise ValueError(f"dist must be a (Q, G) matrix, got shape {tuple(dist.shape)}")
    k = dist.shape[1] if topk is None else min(topk, dist.shape[1])
    distances, indices = torch.sort(dist, dim=1, stable=True)  # stable: ties keep gallery order
    return SearchResult(indices[:, :k].cpu(), distances[:, :k].float().cpu())
