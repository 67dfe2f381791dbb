"""Pairwise distances and input checks shared by the metric-learning losses."""

from __future__ import annotations

import torch

__all__ = ["check_paired_features", "pairwise_euclidean"]


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


def check_paired_features(
    first: torch.Tensor,
    second: torch.Tensor,
    first_labels: torch.Tensor,
    second_labels: torch.Tensor,
    names: tuple[str, str],
    label_hint: str = "",
) -> None:
    """Raise ValueError unless ``first`` (M, D) and ``second`` (N, D) share D and each has 1-D labels per row.

    Args:
        first: Features, shape (M, D).
        second: Features, shape (N, D).
        first_labels: Labels of ``first``, shape (M,).
        second_labels: Labels of ``second``, shape (N,).
        names: How the two feature arguments are called in the caller's signature, e.g. ("anchors", "contrast").
        label_hint: Optional advice appended to the label error.
    """
    a, b = names
    if first.dim() != 2 or second.dim() != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(
            f"{a} and {b} must be (M, D) and (N, D) with the same D, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    if first_labels.shape != (first.shape[0],) or second_labels.shape != (second.shape[0],):
        raise ValueError(
            f"labels must be 1-D and match the feature rows: got {a}_labels {tuple(first_labels.shape)} for "
            f"{first.shape[0]} {a} rows and {b}_labels {tuple(second_labels.shape)} for {second.shape[0]} {b} rows"
            + (f" ({label_hint})" if label_hint else "")
        )
