"""Pairwise distances shared by the metric-learning losses."""

from __future__ import annotations

import torch

__all__ = ["pairwise_euclidean"]


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance between every row of ``x`` and every row of ``y``.

    Computed as ``sqrt(clamp(|x|^2 + |y|^2 - 2 x y^T, min=eps))``, the expansion used by the AGW and CSDN
    reference code, so that zero distances (an item with itself) get a finite value ``sqrt(eps)`` and a zero
    gradient instead of the infinite gradient of ``sqrt`` at 0.

    Args:
        x: Features, shape (M, D).
        y: Features, shape (N, D), same dtype and device as ``x``.
        eps: Lower clamp of the squared distance before the square root.

    Returns:
        Distances, shape (M, N), same dtype as the inputs.
    """
    sq = x.pow(2).sum(dim=1, keepdim=True) + y.pow(2).sum(dim=1).unsqueeze(0)  # (M, 1) + (1, N) -> (M, N)
    sq = torch.addmm(sq, x, y.t(), beta=1.0, alpha=-2.0)
    return sq.clamp(min=eps).sqrt()
