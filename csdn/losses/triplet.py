"""Weighted regularised triplet loss (WRT) of AGW (Ye et al., TPAMI 2021), as used by CSDN stage 3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pairwise import pairwise_euclidean

__all__ = ["WeightedRegularizedTriplet"]


def _masked_softmax_weights(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` over the entries where ``mask`` is 1, row by row, as in the AGW reference.

    The row shift is ``max(scores * mask)`` (so masked-out entries take part as zeros) and ``1e-6`` is added to
    the normaliser; both details are kept because they change the value slightly.

    Args:
        scores: Shape (N, N).
        mask: Shape (N, N), 0/1 in the dtype of ``scores``.

    Returns:
        Weights, shape (N, N), zero where ``mask`` is 0; each row sums to (just under) 1.
    """
    shift = (scores * mask).max(dim=1, keepdim=True).values
    e = torch.exp(scores - shift) * mask
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


class WeightedRegularizedTriplet(nn.Module):
    """AGW's weighted regularised triplet loss: soft-mined, margin-free.

    For anchor ``i`` with Euclidean distances ``d_ij``, the positive term is ``sum_j w_ij d_ij`` over same-label
    items with ``w = softmax(d)`` (the item itself included, at distance ~0), the negative term is
    ``sum_k v_ik d_ik`` over different-label items with ``v = softmax(-d)``, and the loss is
    ``mean_i softplus(pos_i - neg_i)`` (PyTorch's ``SoftMarginLoss`` with target 1).

    Args:
        normalize_feature: L2-normalise the features first (``x / (|x| + 1e-12)``); CSDN and AGW use False.
    """

    def __init__(self, normalize_feature: bool = False) -> None:
        super().__init__()
        self.normalize_feature = bool(normalize_feature)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: Shape (N, D), e.g. pre-BN image features of a whole training batch.
            labels: Identity labels, shape (N,), integer.

        Returns:
            Scalar loss.

        Raises:
            ValueError: If shapes disagree.
        """
        if features.dim() != 2 or labels.shape != (features.shape[0],):
            raise ValueError(
                f"features must be (N, D) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}"
            )
        if self.normalize_feature:
            features = features / (features.norm(p=2, dim=1, keepdim=True) + 1e-12)
        dist = pairwise_euclidean(features, features)  # (N, N)
        is_pos = (labels.unsqueeze(0) == labels.unsqueeze(1)).to(dist.dtype)
        is_neg = 1.0 - is_pos
        dist_ap = dist * is_pos
        dist_an = dist * is_neg
        furthest_positive = (dist_ap * _masked_softmax_weights(dist_ap, is_pos)).sum(dim=1)
        closest_negative = (dist_an * _masked_softmax_weights(-dist_an, is_neg)).sum(dim=1)
        return F.softplus(furthest_positive - closest_negative).mean()

    def extra_repr(self) -> str:
        return f"normalize_feature={self.normalize_feature}"
